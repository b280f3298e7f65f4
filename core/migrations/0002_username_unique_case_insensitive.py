from django.db import migrations

# "Hana" and "hana" are one login name: the database refuses the second, whatever the code.
# An expression index works on both PostgreSQL and SQLite (3.9+).
CREATE = "CREATE UNIQUE INDEX auth_user_username_lower_uniq ON auth_user (lower(username))"
DROP = "DROP INDEX auth_user_username_lower_uniq"


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunSQL(CREATE, DROP)]
