from django.urls import path

from . import views

app_name = "strategies"

urlpatterns = [
    path("strategies/", views.catalog, name="catalog"),
    path("strategies/run/", views.start_run, name="start_run"),
    path("strategies/sweep/", views.start_sweep, name="start_sweep"),
    path("strategies/metrics/", views.metric_definitions, name="metric_definitions"),
    path("backtests/", views.backtest_list, name="backtest_list"),
    path("backtests/compare/", views.compare, name="compare"),
    path("backtests/<int:pk>/", views.backtest_detail, name="backtest_detail"),
    path("sweeps/<int:pk>/", views.sweep_detail, name="sweep_detail"),
]
