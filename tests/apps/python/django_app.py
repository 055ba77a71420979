"""A one-file Django project for the framework test (tests/it/frameworks.rs)."""

import sys

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import path

settings.configure(
    DEBUG=False,
    SECRET_KEY="test-only-not-secret",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
)


def index(request):
    return HttpResponse("django index")


def item(request, number):
    return JsonResponse({"item": number, "query": request.GET.get("q"),
                         "prefix": sys.prefix})


def form(request):
    return HttpResponse("posted " + request.POST.get("field", ""))


urlpatterns = [
    path("", index),
    path("items/<int:number>/", item),
    path("form/", form),
]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
