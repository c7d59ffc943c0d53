"""Load generation in the bench process: schedules, an HTTP/1.1 client, scenarios and statistics."""
