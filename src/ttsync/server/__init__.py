"""`ttsync serve`: the team server (REST API, scheduler, background run workers), over the `app` use-cases."""
