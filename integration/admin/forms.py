import json

from django import forms
from django.core.exceptions import ValidationError

from integration import expressions
from integration.models import Account, AdapterBinding, FeedConfiguration, FilterType
from integration.vtex import statuses as oms


class AccountForm(forms.ModelForm):
    """The app token is write-only: never rendered back; blank keeps the stored one."""

    app_token = forms.CharField(
        label="App token", required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave blank to keep the stored token.",
    )

    class Meta:
        model = Account
        fields = ["name", "account_name", "environment", "app_key", "app_token", "api_base_url", "active", "paused", "intake_mode", "call_start_handling",
                  "seller_ids", "event_domains"]

    # The token goes wherever these point: a change of destination needs the token typed again,
    # or anyone allowed to change a store could send the stored token to a host of their own.
    DESTINATION_FIELDS = ("api_base_url", "environment", "account_name")

    def clean(self):
        cleaned = super().clean()
        if not self.instance.pk and not cleaned.get("app_token"):
            self.add_error("app_token", "A new store needs its app token.")
        elif self.instance.pk and not cleaned.get("app_token"):
            moved = [self.fields[name].label for name in self.DESTINATION_FIELDS if name in self.changed_data]
            if moved:
                self.add_error("app_token", f"{', '.join(str(m) for m in moved)} changed: enter the app token again, "
                                            "so that the stored one is never sent to a new address.")
        return cleaned

    def save(self, commit=True):
        token = self.cleaned_data.get("app_token")
        if token:
            self.instance.app_token = token
        return super().save(commit=commit)


# --- feed configuration ------------------------------------------------------------------------------
class StatusListField(forms.MultipleChoiceField):
    """Checkboxes of the OMS statuses. A value that is not on the list is let through to the model's
    `clean()`, which rejects it with a "did you mean" (VTEX itself accepts any spelling, silently)."""

    def valid_value(self, value):
        return isinstance(value, str)


def split_statuses(text):
    return [part for part in text.replace(",", " ").split() if part]


class FeedConfigurationForm(forms.ModelForm):
    statuses = StatusListField(
        choices=[(s, s) for s in oms.OMS_STATUSES], required=False, label="FromWorkflow statuses",
        widget=forms.CheckboxSelectMultiple(attrs={"class": "oms-status-list"}),
        help_text="The OMS statuses whose changes VTEX puts in the feed (FromWorkflow). None checked: every change.",
    )
    other_statuses = forms.CharField(
        required=False, label="Statuses typed in",
        help_text="Exact OMS spellings, separated by commas or spaces, added to the ones checked. "
                  "VTEX does not check spellings; the hub does.",
    )
    confirm_unknown_statuses = forms.BooleanField(
        required=False, label=oms.CONFIRM_UNKNOWN_LABEL,
        help_text="Tick to save typed statuses that are in none of VTEX's lists. A misspelled status never fires.",
    )

    class Meta:
        model = FeedConfiguration
        fields = ["filter_type", "statuses", "other_statuses", "confirm_unknown_statuses", "expression", "disable_single_fire", "visibility_timeout", "retention"]
        widgets = {"expression": forms.Textarea(attrs={"rows": 2, "cols": 70, "class": "vLargeTextField"})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = list(self.instance.statuses or []) if self.instance.pk else list(self.fields["statuses"].initial or [])
        if self.instance.pk:
            # Statuses the checkboxes cannot show (loaded from VTEX, say) stay visible, typed in.
            self.initial["statuses"] = [s for s in current if s in oms.OMS_STATUSES]
            self.initial["other_statuses"] = ", ".join(s for s in current if s not in oms.OMS_STATUSES)
        self.fields["expression"].help_text = ("JSONata, for FromOrders, e.g. status = \"ready-for-handling\" and value > 10000. "
                                               "Checked for syntax before saving; try it on an order with 'Test a JSONata expression'.")

    def clean(self):
        cleaned = super().clean()
        chosen = list(cleaned.get("statuses") or [])
        for status in split_statuses(cleaned.get("other_statuses") or ""):
            if status not in chosen:
                chosen.append(status)
        # The order of the OMS list, typed ones after: a stable body to compare with VTEX's.
        known = [s for s in oms.OMS_STATUSES if s in chosen]
        cleaned["statuses"] = known + [s for s in chosen if s not in known]
        unknown = oms.unknown_statuses(cleaned["statuses"])
        if cleaned.get("confirm_unknown_statuses"):
            self.instance.confirmed_statuses = unknown
        else:  # confirmed earlier and still chosen: still confirmed
            self.instance.confirmed_statuses = [s for s in (self.instance.confirmed_statuses or []) if s in unknown]
        expression = (cleaned.get("expression") or "").strip()
        cleaned["expression"] = expression
        if cleaned.get("filter_type") == FilterType.FROM_ORDERS and expression:
            from integration.expressions import expression_syntax_error

            problem = expression_syntax_error(expression)
            if problem:
                self.add_error("expression", problem)
        return cleaned


class ExpressionTestForm(forms.Form):
    expression = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), label="JSONata expression",
                                 max_length=expressions.EXPRESSION_MAX_LENGTH)
    document = forms.CharField(widget=forms.Textarea(attrs={"rows": 18, "cols": 80}), label="Sample order (JSON)",
                               max_length=expressions.DOCUMENT_MAX_BYTES,
                               help_text="Default: the store's most recent order as VTEX last returned it.")

    def clean_expression(self):
        expression = self.cleaned_data["expression"].strip()
        problem = expressions.expression_syntax_error(expression)
        if problem:
            raise ValidationError(problem)
        return expression

    def clean_document(self):
        try:
            document = json.loads(self.cleaned_data["document"])
        except RecursionError:
            raise ValidationError(f"The document is nested more than {expressions.DOCUMENT_MAX_DEPTH} levels deep.") from None
        except ValueError as exc:
            raise ValidationError(f"Not valid JSON: {exc}") from None
        problem = expressions.document_problem(document)
        if problem:
            raise ValidationError(problem)
        return document


# --- adapter bindings: the adapter's own settings form ------------------------------------------------
SETTING_PREFIX = "setting__"
CLEAR_SUFFIX = "__clear"


def setting_field_name(name):
    return SETTING_PREFIX + name


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never renders a value, not even the one just posted (as PasswordInput)."""

    def format_value(self, value):
        return None


def _is_multiline(help_text):
    return "per line" in (help_text or "").lower()


UNREADABLE_SECRET_NOTE = ("The stored secrets cannot be decrypted (their key is not in HUB_ENCRYPTION_KEYS): "
                          "enter it again. Saving keeps only the secrets entered here.")


def _setting_form_field(setting, stored_secret, unreadable=False):
    label = setting.display_label()
    help_text = setting.help or ""
    required = setting.required and setting.default is None and not setting.secret
    if setting.secret:
        note = (UNREADABLE_SECRET_NOTE if unreadable else "Write-only. A value is stored: leave blank to keep it." if stored_secret
                else "Write-only: never shown again once saved.")
        widget = (WriteOnlyTextarea(attrs={"rows": 3, "cols": 60, "autocomplete": "off"}) if _is_multiline(help_text)
                  else forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}))
        return forms.CharField(label=label, required=False, strip=True, help_text=f"{help_text} {note}".strip(), widget=widget)
    if setting.type == "int":
        return forms.IntegerField(label=label, required=required, help_text=help_text)
    if setting.type == "bool":
        return forms.BooleanField(label=label, required=False, help_text=help_text)
    if setting.type == "choice":
        choices = [(str(c[0]), c[1]) if isinstance(c, (tuple, list)) else (str(c), str(c)) for c in setting.choices]
        if not required:
            choices = [("", "---------")] + choices
        return forms.ChoiceField(label=label, required=required, choices=choices, help_text=help_text)
    if setting.type == "url":
        widget = forms.URLInput(attrs={"class": "vURLField"})
    elif _is_multiline(help_text):
        widget = forms.Textarea(attrs={"rows": 3, "cols": 60})
    else:
        widget = forms.TextInput(attrs={"class": "vTextField"})
    # The adapter validates (URLs, paths, its own rules): no Django URL/path field second-guesses it.
    return forms.CharField(label=label, required=required, help_text=help_text, widget=widget, strip=True)


class BindingFormBase(forms.ModelForm):
    adapter_cls = None  # set by binding_form_for
    secrets_unreadable = False  # the stored secrets cannot be decrypted: only those entered are kept

    actions = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                        help_text="None checked: every action the adapter supports.")

    class Meta:
        model = AdapterBinding
        fields = ["account", "adapter_key", "name", "enabled", "gates_start_handling", "actions"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from integration.plugins.contract import ACTIONS
        from integration.plugins.manager import get_registry

        if "account" in self.fields:
            self.fields["account"].label = "Store"
        if "adapter_key" in self.fields:
            # The settings below belong to the adapter chosen on the previous page: only that one here.
            choices = [(k, label) for k, label in get_registry().adapter_choices()
                       if self.adapter_cls is None or k == self.adapter_cls.key]
            self.fields["adapter_key"] = forms.ChoiceField(
                label="Adapter", choices=choices, initial=self.adapter_cls.key if self.adapter_cls else None,
                help_text="Its settings form is below. For another adapter, go back and choose it.")
        supported = [a for a in ACTIONS if self.adapter_cls is not None and a in self.adapter_cls.actions]
        if "actions" in self.fields:
            self.fields["actions"].choices = [(a, a) for a in supported]
            self.initial.setdefault("actions", list(self.instance.actions or []))
        if self.adapter_cls is None:
            return
        stored = dict(self.instance.settings or {}) if self.instance.pk else {}
        for setting in self.adapter_cls.settings:
            name = setting_field_name(setting.name)
            if name not in self.fields:
                continue
            if not setting.secret:
                value = stored.get(setting.name, setting.default)
                if value is not None:
                    self.initial.setdefault(name, str(value) if setting.type == "choice" else value)

    def _post_clean(self):
        super()._post_clean()
        if self.adapter_cls is None or not any(n.startswith(SETTING_PREFIX) for n in self.fields):
            return
        names = [s.name for s in self.adapter_cls.settings]
        if any(setting_field_name(n) in self.errors for n in names):
            return  # a field Django itself rejected (not a number...): fix that first
        raw = {}
        for setting in self.adapter_cls.settings:
            value = self.cleaned_data.get(setting_field_name(setting.name))
            raw[setting.name] = "" if value is None and setting.type != "int" else value
        cleared = [s.name for s in self.adapter_cls.settings
                   if s.secret and self.cleaned_data.get(setting_field_name(s.name) + CLEAR_SUFFIX)]
        if self.secrets_unreadable:
            self.instance.secret_settings = {}  # they cannot be used anyway; what is entered now replaces them
        elif self._secrets_left_behind(raw, cleared):
            return
        if cleared:
            self.instance.secret_settings = {k: v for k, v in self.instance.secret_settings.items() if k not in cleared}
        try:
            self.instance.apply_settings(raw)
        except ValidationError as exc:
            for message in exc.message_dict.get("settings", []) + exc.message_dict.get("adapter_key", []):
                field, sep, text = message.partition(": ")
                if sep and field in names:
                    self.add_error(setting_field_name(field), text)
                else:
                    self.add_error(None, message)

    def _secrets_left_behind(self, raw, cleared):
        """A stored secret follows its URL: when a URL setting changes, every stored secret must
        be entered again (or cleared) in the same form, or it would go to the new address."""
        if not self.instance.pk:
            return False
        before = dict(self.instance.settings or {})
        moved = [s for s in self.adapter_cls.settings if s.type == "url" and not s.secret
                 and (raw.get(s.name) or "") != (before.get(s.name) or "")]
        if not moved:
            return False
        try:
            stored = set(self.instance.secret_settings or {})
        except Exception:  # undecryptable: they must be entered again anyway
            stored = {s.name for s in self.adapter_cls.settings if s.secret}
        missing = [s for s in self.adapter_cls.settings
                   if s.secret and s.name in stored and s.name not in cleared and raw.get(s.name) in ("", None)]
        for setting in missing:
            self.add_error(setting_field_name(setting.name),
                           f"{', '.join(m.display_label() for m in moved)} changed: enter this again (or clear it), "
                           "so that the stored value is never sent to a new address.")
        return bool(missing)


def binding_form_for(adapter_cls, *, with_settings=True, stored_secrets=(), secrets_unreadable=False):
    """A form class for bindings of one adapter: the model's fields plus the adapter's settings."""
    attrs = {"adapter_cls": adapter_cls, "__module__": __name__, "secrets_unreadable": secrets_unreadable}
    if adapter_cls is not None and with_settings:
        for setting in adapter_cls.settings:
            name = setting_field_name(setting.name)
            attrs[name] = _setting_form_field(setting, setting.name in stored_secrets, secrets_unreadable)
            if setting.secret and setting.name in stored_secrets:
                attrs[name + CLEAR_SUFFIX] = forms.BooleanField(
                    label=f"Clear {setting.display_label().lower()}", required=False,
                    help_text="Remove the stored value.")
    return type(f"{adapter_cls.__name__ if adapter_cls else 'Unknown'}BindingForm", (BindingFormBase,), attrs)


def setting_field_names(adapter_cls, stored_secrets=()):
    names = []
    for setting in adapter_cls.settings if adapter_cls else ():
        names.append(setting_field_name(setting.name))
        if setting.secret and setting.name in stored_secrets:
            names.append(setting_field_name(setting.name) + CLEAR_SUFFIX)
    return names
