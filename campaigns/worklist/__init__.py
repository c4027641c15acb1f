"""The group leader's worklist: each morning, the members he should contact today.

models: WorklistRule, WorklistSettings, WorklistItem · services: worklist_build,
follow_up_rates · admin: the list, its rules and settings · tasks: 07:30 beat."""
