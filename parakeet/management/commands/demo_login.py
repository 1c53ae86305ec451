"""Create (or reset) the local demo login and print it: the README's first command uses this."""
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create or reset a staff login for the local dashboard and print its password."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="trader")

    def handle(self, *args, username, **options):
        password = secrets.token_urlsafe(12)
        user, created = get_user_model().objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        verb = "Created" if created else "Reset the password of"
        self.stdout.write(self.style.SUCCESS(f"{verb} login  username: {username}  password: {password}"))
