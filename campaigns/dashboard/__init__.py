"""The KPI dashboard: a nightly snapshot of the figures staff watch, and the admin home that shows it.

models: KpiSnapshot, KpiThreshold, KpiSettings · kpi: snapshot_build (the
figures' definitions) · home: the admin home's charts and tables · admin:
snapshots, traffic lights, settings · tasks: the 04:30 beat."""
