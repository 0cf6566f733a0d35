"""The use-cases the CLI (and a future web server) call: workspace init/apply/export (`app.workspace`), runs
(`app.runs`), retention (`app.retention`) and the quickstart (`app.quickstart`). See docs/architecture.md."""
