"""Grading tooling of the course: nbgrader preprocessors, the round trip, the mutant runner.

Not imported by students' notebooks; used by nbgrader_config.py, the Makefile and tests/.
"""
