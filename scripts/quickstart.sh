#!/usr/bin/env bash
# The main job, end to end: set up, build the example assignment for the example roster
# (PDFs included), then grade the example submissions beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=output/example
rm -rf "$OUT"
.venv/bin/deepdrill build examples/assignment.toml --roster examples/roster.csv --out "$OUT"
.venv/bin/deepdrill grade --key "$OUT/key.json" examples/submissions --out "$OUT/grades" --pdf
echo
echo "Done. Look at:"
show() { printf '  %-46s %s\n' "$1" "$2"; }
show "$OUT/problems.pdf and solutions.pdf" "every student's sheets, for printing"
show "$OUT/students/<id>/" "what a student is handed: problems.pdf, submission.json,"
show "" "and answers.html (the answer form: open it in a browser)"
show "$OUT/solutions/<id>.pdf" "their worked solutions, for after the deadline"
show "$OUT/grades/grades.csv, report.json" "the grades of examples/submissions"
show "$OUT/grades/class_report.pdf" "how the class did; feedback/<id>.pdf per student"
