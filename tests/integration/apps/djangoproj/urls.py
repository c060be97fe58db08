from django.urls import path

from djangoproj import views

urlpatterns = [
    path("", views.index),
    path("info/<slug:name>/", views.info),
    path("submit/", views.submit),
    path("protected/", views.protected),
    path("boom/", views.boom),
    path("download/", views.download),
    path("isolation/", views.isolation),
]
