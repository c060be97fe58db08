# A minimal Django project for test_frameworks.py: settings in code, two views, a CSRF-exempt POST.
