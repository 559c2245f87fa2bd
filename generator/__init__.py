"""Exercise types, randomization, worked solutions and rendering to LaTeX and PDF."""
