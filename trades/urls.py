from django.urls import path

from . import views

app_name = "trades"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("trades/", views.trade_list, name="trade_list"),
    path("trades/new/", views.trade_new, name="trade_new"),
    path("trades/import/", views.trade_import, name="trade_import"),
    path("trades/<int:pk>/", views.trade_detail, name="trade_detail"),
    path("trades/<int:pk>/edit/", views.trade_edit, name="trade_edit"),
    path("trades/<int:pk>/close/", views.trade_close, name="trade_close"),
    path("trades/<int:pk>/cancel/", views.trade_cancel, name="trade_cancel"),
    path("portfolios/", views.portfolio_list, name="portfolio_list"),
    path("portfolios/new/", views.portfolio_new, name="portfolio_new"),
    path("portfolios/<int:pk>/", views.portfolio_detail, name="portfolio_detail"),
    path("portfolios/<int:pk>/close-position/", views.position_close, name="position_close"),
]
