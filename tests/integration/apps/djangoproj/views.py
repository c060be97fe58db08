# Views for the test project: a page, a JSON view echoing request details, and POST views with and
# without CSRF protection.
import json

from django.http import FileResponse, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt


def index(request):
    return HttpResponse("Hello from Django", content_type="text/plain")


def info(request, name):
    return JsonResponse({
        "path": request.path,
        "path_info": request.path_info,
        "script_name": request.META.get("SCRIPT_NAME"),
        "method": request.method,
        "query": request.GET.dict(),
        "secure": request.is_secure(),
        "host": request.get_host(),
        "name": name,
    })


@csrf_exempt
def submit(request):
    if request.method != "POST":
        return HttpResponse(status=405)
    if request.content_type == "application/json":
        payload = json.loads(request.body)
    else:
        payload = request.POST.dict()
    return JsonResponse({"received": payload, "length": len(request.body)})


def protected(request):
    return HttpResponse("passed CSRF", content_type="text/plain")


def boom(request):
    raise RuntimeError("django view failed")


def download(request):
    return FileResponse(open(request.GET["path"], "rb"))


def isolation(request):
    """Request and thread-local state (translation.activate) survive a cooperative sleep of the async worker."""
    import time

    from django.utils import translation

    translation.activate(request.GET["lang"])
    time.sleep(0.2)
    return JsonResponse({"lang": translation.get_language(), "arg": request.GET["lang"]})
