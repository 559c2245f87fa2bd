"""Jinja2 LaTeX templates: sheet.tex.j2 and, per exercise type, <id>/problem.tex.j2 and <id>/solution.tex.j2."""
