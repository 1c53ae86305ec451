from django.urls import path

from . import views

app_name = "scanner"

urlpatterns = [
    path("scanner/", views.scanner, name="scanner"),
    path("scanner/runs/<int:run_id>/", views.scanner, name="run_detail"),
    path("scanner/runs/<int:run_id>/backtest/", views.backtest_scan, name="backtest_scan"),
    path("scanner/hits/<int:hit_id>/", views.hit_detail, name="hit_detail"),
    path("scanner/screens/", views.save_screen, name="save_screen"),
    path("scanner/screens/<str:name>/delete/", views.delete_screen, name="delete_screen"),
    path("scanner/replays/", views.replays, name="replays"),
    path("scanner/replays/<int:replay_id>/", views.replay_detail, name="replay_detail"),
    path("scanner/replays/<int:replay_id>/backtest/", views.backtest_replay, name="backtest_replay"),
]
