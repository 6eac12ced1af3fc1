"""Built-in task definitions (YAML), shipped in the wheel as evalbench.builtin_tasks."""
