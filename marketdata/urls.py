from django.urls import path

from . import views

app_name = "marketdata"

urlpatterns = [
    path("data/overview/", views.overview, name="market_overview"),
    path("instruments/", views.instrument_list, name="instrument_list"),
    path("instruments/<str:symbol>/", views.instrument_detail, name="instrument_detail"),
    path("data/", views.data_health, name="data_health"),
    path("data/bars/<int:pk>/", views.bar_review, name="bar_review"),
    path("data/runs/", views.run_list, name="run_list"),
    path("data/runs/<int:run_id>/", views.run_detail, name="run_detail"),
]
