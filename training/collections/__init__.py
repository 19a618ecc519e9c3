"""Collections the project can train on without a download (the demo model's kanjivg)."""
