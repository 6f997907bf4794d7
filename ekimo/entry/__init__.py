"""The assembly: the app, the CLI, the worker and the model registry put the domains together."""
