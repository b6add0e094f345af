"""gradeflow's Argo client, by concern: `backends` (settings, the Argo Server and Kubernetes
API backends, pod names), `status` (a run's progress from its Workflow) and `versions` (which
Argo releases run gradeflow right). `pipelines.client` sequences them into submit, status,
retry, resubmit, logs and sync, and the `gradeflow` subcommands."""
