"""The baseline for bench/intake.py: a bare DRF endpoint that validates 8 fields and INSERTs a row.

Mounted only when BAEUM_BENCH_ENDPOINTS=1; the bench creates its table.
"""

from django.db import connection
from django.urls import path
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

TABLE_SQL = """
CREATE TABLE IF NOT EXISTS bench_bare (
    id BIGSERIAL PRIMARY KEY, user_id BIGINT NOT NULL, round_id BIGINT NOT NULL,
    income_category VARCHAR(20) NOT NULL, course_name VARCHAR(200) NOT NULL,
    institution VARCHAR(200) NOT NULL, starts_on DATE NOT NULL, ends_on DATE NOT NULL,
    weekly_hours SMALLINT NOT NULL
)
"""


class BareSerializer(serializers.Serializer):
    round = serializers.IntegerField(min_value=1)
    income_category = serializers.ChoiceField(choices=["basic_livelihood", "near_poor", "none"])
    course_id = serializers.CharField(max_length=40, allow_blank=True)
    course_name = serializers.CharField(max_length=200)
    institution = serializers.CharField(max_length=200)
    starts_on = serializers.DateField()
    ends_on = serializers.DateField()
    weekly_hours = serializers.IntegerField(min_value=1, max_value=80)


class BareInsertApi(APIView):
    def post(self, request):
        data = BareSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bench_bare (user_id, round_id, income_category, course_name,"
                " institution, starts_on, ends_on, weekly_hours)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                [
                    request.user.pk,
                    v["round"],
                    v["income_category"],
                    v["course_name"],
                    v["institution"],
                    v["starts_on"],
                    v["ends_on"],
                    v["weekly_hours"],
                ],
            )
            (row_id,) = cursor.fetchone()
        return Response({"id": row_id}, status=status.HTTP_201_CREATED)


urlpatterns = [path("bare/", BareInsertApi.as_view())]
