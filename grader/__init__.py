"""Parsing and scoring students' answers, one submission or a whole class."""
