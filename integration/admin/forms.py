from django import forms

from integration.models import Account


class AccountForm(forms.ModelForm):
    """The app token is write-only: never rendered back; blank keeps the stored one."""

    app_token = forms.CharField(
        label="App token", required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave blank to keep the stored token.",
    )

    class Meta:
        model = Account
        fields = ["name", "account_name", "environment", "app_key", "app_token", "api_base_url", "active", "paused", "intake_mode", "call_start_handling"]

    def clean(self):
        cleaned = super().clean()
        if not self.instance.pk and not cleaned.get("app_token"):
            self.add_error("app_token", "A new store needs its app token.")
        return cleaned

    def save(self, commit=True):
        token = self.cleaned_data.get("app_token")
        if token:
            self.instance.app_token = token
        return super().save(commit=commit)
