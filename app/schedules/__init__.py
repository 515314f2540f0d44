"""Schedules: flows started on a cron expression or an interval."""
