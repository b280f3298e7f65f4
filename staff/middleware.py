"""The staff pages speak Korean unless the user chose another language."""

from django.conf import settings
from django.utils import translation

STAFF_PREFIX = "/staff/"


class StaffLanguageMiddleware:
    """Activate the staff language on /staff/: the language cookie if the user set one
    (the language switch), else BAEUM_STAFF_LANGUAGE (Korean).

    LocaleMiddleware, which runs before, keeps serving the rest of the site from the
    Accept-Language header with English by default: the API's clients and tests rely on
    English messages when they ask for no language. A staff member's browser usually
    asks for English even in Seoul offices, so the header is not consulted here.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.supported = {code for code, _ in settings.LANGUAGES}

    def __call__(self, request):
        if request.path_info.startswith(STAFF_PREFIX):
            chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
            language = chosen if chosen in self.supported else settings.BAEUM_STAFF_LANGUAGE
            translation.activate(language)
            request.LANGUAGE_CODE = language
        return self.get_response(request)
