"""Training: schedules, checkpoint policy, progress/report callbacks and the SFT recipe."""
