from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import throttle, views
from .api import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", throttle.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", api.urls),
    path("healthz", views.healthz, name="healthz"),
    path("", include("trades.urls")),
    path("", include("marketdata.urls")),
    path("", include("scanner.urls")),
    path("", include("strategies.urls")),
]

handler404 = "parakeet.errors.not_found"
