"""The learner orchestrator: a learner's day plan made from four agents' signals (seeds/003_*)."""
