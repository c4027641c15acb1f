"""The set-based recompute: aggregate queries into temporary tables, one tier
CASE built from the ladder rows, then one write of the metrics that touches
only changed rows (metrics_write), then the circles.

No per-member queries: a run for one member and a run for a million execute
the same statements, the scope table deciding which members they cover (a
full run writes the circles one by one). The only Python loops are over the few
promotion candidates that might need a review and over numpy arrays for the
churn scores.

A one-member run (after each order) is some forty short statements, so each
costs: a step drops the temporary tables it made, tiers_recompute drops the
shared ones, and a failed run's tables go with its rolled-back transaction,
so none is dropped "if exists" beforehand.

The one entry point is segments.services.tiers_recompute, which runs the
stages in this order inside one transaction (a nightly run's scope comes from
nightly.nightly_scope). What each stage reads and writes (seg_* are temporary
tables of the run, dropped at its end):

  stage      module   reads                                   writes
  scope      scope    crm_member, crm_order, membermetrics    seg_scope, seg_stored, seg_changed
  rfm_tiers  rfm      crm_order, tier ladder, tierpin,        seg_rfm; segments_tierchange,
                      tierreview, seg_stored                  tierreview, groupmove (the moves)
  lines      lines    crm_order, crm_orderline, crm_product   seg_cat
  habits     habits   crm_order                               seg_habits
  v_score    scores   crm_engagementevent, seg_rfm            seg_v
  churn      scores   seg_rfm, seg_habits, membermetrics,     seg_churn
                      the churn fit (fit.fit_for)
  write      write    every seg_* table above                 segments_membermetrics (changed rows only)
  circles    circles  crm_member, membermetrics, circle rules segments_circlemembership

base holds what they share: the as-of date's windows (Bounds), the table
names and the SQL helpers for PostgreSQL and SQLite."""
