"""Registration, token login and logout (SPEC "REST API": /auth/...)."""

from django.contrib.auth import authenticate, logout
from django.contrib.auth.signals import user_logged_in
from django.db import models
from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from drf_standardized_errors.openapi_serializers import ClientErrorEnum
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from api import examples
from api import serializers as s
from api.errors import field_error
from benefits import services
from core.auth import (
    auth_token_issue,
    auth_token_revoke,
    lockout_message,
    lockout_minutes,
    login_locked_out,
)


class LoginLockedOut(exceptions.APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "locked_out"

    def __init__(self):
        super().__init__(lockout_message())
        self.wait = lockout_minutes() * 60  # sent as Retry-After


class LoginRefusedCode(models.TextChoices):
    THROTTLED = "throttled"
    LOCKED_OUT = "locked_out"


class LoginRefusedErrorSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=LoginRefusedCode.choices)
    detail = serializers.CharField()
    attr = serializers.CharField(allow_null=True)


class LoginRefusedSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=ClientErrorEnum.choices)
    errors = LoginRefusedErrorSerializer(many=True)


LOGIN_REFUSED = OpenApiResponse(
    LoginRefusedSerializer,
    description=(
        "`throttled`: too many attempts from this address (BAEUM_AUTH_RATE). `locked_out`: "
        "too many failed logins for this username from this address; Retry-After tells "
        "when to try again."
    ),
)


class AuthTokenApi(APIView):
    """Log in: a new token, valid for BAEUM_CITIZEN_TOKEN_DAYS (citizens) or
    BAEUM_STAFF_TOKEN_HOURS (everyone else); the token issued before stops working."""

    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        summary="Log in: exchange a username and password for a token",
        request=s.TokenRequestSerializer,
        responses={200: s.TokenSerializer, 429: LOGIN_REFUSED},
        examples=examples.TOKEN,
    )
    def post(self, request):
        data = s.TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(
            request,
            username=data.validated_data["username"],
            password=data.validated_data["password"],
        )
        if user is None:
            if login_locked_out(request):
                raise LoginLockedOut()
            raise field_error(
                None, "Unable to log in with the username and password given.", "invalid_login"
            )
        token = auth_token_issue(user=user)
        # As a session login does: last_login, and Axes forgets the failed attempts.
        user_logged_in.send(sender=type(user), request=request, user=user)
        return Response({"token": token.key})


class AuthLogoutApi(APIView):
    """Log out: the token stops working (and a browsable-API session ends)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Log out: the token stops working",
        request=None,
        responses={204: OpenApiResponse(description="Logged out.")},
    )
    def post(self, request):
        auth_token_revoke(user=request.user)
        if request.auth is None:  # signed in with a session rather than a token
            logout(request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CitizenRegisterApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        summary="Register a citizen account",
        request=s.RegisterSerializer,
        responses={201: s.UserSerializer},
        examples=examples.REGISTER,
    )
    def post(self, request):
        data = s.RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.citizen_register(**data.validated_data)
        return Response(s.UserSerializer(user).data, status=status.HTTP_201_CREATED)


urlpatterns = [
    path("auth/token/", AuthTokenApi.as_view(), name="auth-token"),
    path("auth/logout/", AuthLogoutApi.as_view(), name="auth-logout"),
    path("auth/register/", CitizenRegisterApi.as_view(), name="auth-register"),
]
