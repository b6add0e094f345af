"""gradeflow's Argo client, by concern: `settings` (how to connect, `connect()`), `backends`
(what every backend shares, pod names), `server` and `kube` (the Argo Server and Kubernetes API
backends), `status` (a run's progress from its Workflow), `versions` (which Argo releases run
gradeflow right), `runs` (submit, find, wait, retry, resubmit, logs), `groups` (a class graded as
several shard runs, as one), `sync` (a finished run into the course) and `commands` (the
`gradeflow` subcommands). `pipelines.client` is the one place to import the Python API from."""
