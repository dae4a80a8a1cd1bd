"""Names vulture cannot see used (``make deadcode``; decorated entry points: pyproject.toml).

Anything vulture reports that is not here is dead: delete it (with its tests), don't list it."""

# ruff: noqa: B018, F821
# pydantic class configuration (planner/config/models.py)
model_config
# pandera DataFrameModel Config classes and columns (validation/forecasts.py)
Config
p95_coverage
# validation/requests.py: the manifest table's schema (tests/flows/test_file_key_migration.py)
ingested_files
# great_expectations context setting (validation/quality.py)
_.progress_bars
# http.server.BaseHTTPRequestHandler override (reports/pages.py)
_.log_message
# highspy matrix attribute written, read by HiGHS (planner/ilp/split_tasks.py)
_.format_
# highspy column integrality written, read by HiGHS (planner/ilp/polish.py)
_.integrality_
# sktime BaseForecaster hooks, called by fit/update/predict (planner/forecast/*)
_.get_test_params
parameter_set
_._fit
_._update
_._predict
_._predict_quantiles
X
# the ILP variable registry's metadata (planner/ilp/variables.py), checked by test_ilp_families
dims
# read by tests of behaviour: the backtest (test_forecast_pipeline, test_nowcast), the serving
# limit case (test_bounds, README), the gateway's throttle count (test_fairness), the length
# predictor's training size (test_routers no-leak check), the pool's load (test_instances),
# the executor's replay (test_executors)
run_backtest
ideal
throttled
_.throttled
trained_rows
outstanding_tokens
_.serve
