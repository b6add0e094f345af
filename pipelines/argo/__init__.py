"""gradeflow's Argo client, by concern: `backends` (settings, the Argo Server and Kubernetes
API backends, pod names), `status` (a run's progress from its Workflow), `versions` (which
Argo releases run gradeflow right), `runs` (submit, find, wait, retry, resubmit, logs),
`sync` (a finished run into the course) and `commands` (the `gradeflow` subcommands).
`pipelines.client` is the one place to import the Python API from."""
