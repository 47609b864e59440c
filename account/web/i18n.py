"""The web UI's languages: English and Russian from a small message catalogue. Pure Python.

Messages are looked up by their English text (``t("Tickets")``), so English needs no entries
except for the keyed families ``status:…``, ``priority:…``, ``sla:…``, ``state:…``, ``vis:…``,
``role:…``, ``direction:…``, ``disclose:…``, ``link:…`` and ``event:…``, whose English text is
the part after the colon with underscores as spaces unless ``EN`` says otherwise. A message
missing in Russian falls back to English, so a page never shows a bare key. Placeholders use
``str.format`` names: ``t("Ticket {number} created.", number=n)``.
"""

from __future__ import annotations

# ruff: noqa: RUF001  (Russian text has letters that look like Latin ones)
from collections.abc import Callable
from typing import Final

__all__ = ["CATALOGUE", "DEFAULT", "LANGUAGES", "LANG_COOKIE", "negotiate", "translator"]

LANGUAGES: Final = ("en", "ru")
DEFAULT: Final = "en"
LANG_COOKIE: Final = "tix_lang"

EN: Final[dict[str, str]] = {
    "status:in_progress": "in progress",
    "status:on_hold": "on hold",
    "sla:none": "no SLA",
    "sla:at_risk": "at risk",
    "state:in_progress": "in progress",
    "vis:public": "public (client too)",
    "vis:partner": "partners",
    "vis:internal": "internal (this company)",
    "direction:downstream": "we delegate to them",
    "direction:upstream": "they delegate to us",
    "disclose:named": "named",
    "disclose:anonymous": "anonymous",
    "disclose:hidden": "hidden",
    "event:chain_status": "chain",
    "event:cascade_held": "held at a suspended link",
}

RU: Final[dict[str, str]] = {
    # navigation and common words
    "Tickets": "Заявки",
    "New ticket": "Новая заявка",
    "Partners": "Партнёры",
    "Reports": "Отчёты",
    "Log in": "Войти",
    "Log out": "Выйти",
    "Username": "Имя пользователя",
    "Password": "Пароль",
    "Incorrect username or password.": "Неверное имя пользователя или пароль.",
    "Too many failed sign-ins. Please try again in {minutes} min.": (
        "Слишком много неудачных попыток входа. Попробуйте снова через {minutes} мин."
    ),
    "The form expired. Please try again.": "Форма устарела. Попробуйте ещё раз.",
    "Back to tickets": "К списку заявок",
    "Not found": "Не найдено",
    "There is no such page, or it is not yours to see.": (
        "Такой страницы нет или она вам недоступна."
    ),
    "Refused": "Отклонено",
    "The form was not sent from this site or has expired. Reload the page.": (
        "Форма отправлена не с этого сайта или устарела. Обновите страницу."
    ),
    "Not allowed for your role.": "Недоступно для вашей роли.",
    "Something went wrong": "Что-то пошло не так",
    "The node could not do this just now. Nothing was changed; try again.": (
        "Узел не смог выполнить действие. Ничего не изменено; попробуйте ещё раз."
    ),
    # ticket list
    "Status": "Статус",
    "Partner": "Партнёр",
    "Search": "Поиск",
    "number, title or text": "номер, тема или текст",
    "Filter": "Найти",
    "any": "любой",
    "Number": "Номер",
    "Title": "Тема",
    "Priority": "Приоритет",
    "Updated": "Изменена",
    "from": "от",
    "Newer": "Новее",
    "Older": "Старше",
    "No tickets match.": "Заявок не найдено.",
    # new ticket
    "Description": "Описание",
    "Category": "Категория",
    "Service object": "Объект обслуживания",
    "Site": "Площадка",
    "Address": "Адрес",
    "Equipment": "Оборудование",
    "Requester": "Заявитель",
    "Name": "Имя",
    "E-mail": "Эл. почта",
    "Phone": "Телефон",
    "Client organisation": "Организация клиента",
    "Create ticket": "Создать заявку",
    "Ticket {number} created.": "Заявка {number} создана.",
    # ticket page
    "Resolution": "Решение",
    "From partner": "От партнёра",
    "Assignee": "Исполнитель",
    "Created": "Создана",
    "Rating": "Оценка",
    "Chain": "Цепочка",
    "Chain of delegations": "Цепочка передачи заявки",
    "Delegations": "Передачи",
    "Level": "Уровень",
    "due": "срок",
    "undisclosed": "не раскрыт",
    "waiting to be delivered": "ждёт доставки",
    "delivery failed": "не доставлено",
    "Confirm result": "Принять результат",
    "Return for rework": "Вернуть на доработку",
    "What is missing?": "Что не сделано?",
    "Reason": "Причина",
    "Recall": "Отозвать",
    "Comments": "Комментарии",
    "No comments yet.": "Комментариев пока нет.",
    "Comment": "Комментарий",
    "Visible to": "Кому виден",
    "Add comment": "Добавить комментарий",
    "Attachments": "Вложения",
    "No attachments.": "Вложений нет.",
    "being fetched": "загружается",
    "File": "Файл",
    "Upload": "Загрузить",
    "Actions": "Действия",
    "Accept the offer": "Принять заявку",
    "Decline": "Отклонить",
    "New status": "Новый статус",
    "Note (the resolution, when resolving)": "Примечание (при выполнении — решение)",
    "Set status": "Сменить статус",
    "Delegate to partner": "Передать партнёру",
    "Note for the partner": "Примечание для партнёра",
    "Delegate": "Передать",
    "Rate the result": "Оцените результат",
    "Rate": "Оценить",
    "Timeline": "История",
    "Assign": "Назначить",
    "Assigned to {name}.": "Назначено: {name}.",
    "Unassigned.": "Исполнитель снят.",
    "Assigned to me": "Мои",
    "Response due": "Реакция до",
    "Resolution due": "Решение до",
    "paused": "пауза",
    "A partner's deadline is later than ours": "Срок партнёра позже нашего",
    # results of actions
    "Comment added.": "Комментарий добавлен.",
    "Status set to {status}.": "Статус: {status}.",
    "Offer accepted.": "Заявка принята.",
    "Offer declined.": "Заявка отклонена.",
    "Offered to {partner}.": "Передано партнёру {partner}.",
    "Thank you for the rating.": "Спасибо за оценку.",
    "Result confirmed.": "Результат принят.",
    "Delegation recalled.": "Передача отозвана.",
    "Returned for rework.": "Возвращено на доработку.",
    "File uploaded.": "Файл загружен.",
    "Choose a file first.": "Сначала выберите файл.",
    "The file is over the limit of {limit}.": "Файл больше допустимых {limit} байт.",
    # partners
    "Links": "Связи",
    "Save contract": "Сохранить договор",
    "Suspend": "Приостановить",
    "Resume": "Возобновить",
    "suspended by the partner": "приостановлено партнёром",
    "Key id": "Ключ",
    "since": "с",
    "No partners yet. Invite one, or accept an invitation.": (
        "Партнёров пока нет. Пригласите партнёра или примите приглашение."
    ),
    "Invite a partner": "Пригласить партнёра",
    "The partner you invite becomes your downstream: you can delegate tickets to them.": (
        "Приглашённый партнёр станет вашим исполнителем: вы сможете передавать ему заявки."
    ),
    "Invitation token — send it to your partner": "Токен приглашения — отправьте его партнёру",
    "Copy": "Копировать",
    "Copied": "Скопировано",
    "Valid until": "Действует до",
    "single use": "одноразовый",
    "Note": "Примечание",
    "Valid for days": "Срок, дней",
    "Create invitation": "Создать приглашение",
    "Accept an invitation": "Принять приглашение",
    "Invitation token": "Токен приглашения",
    "Accept": "Принять",
    "Invitation created. Copy the token below.": "Приглашение создано. Скопируйте токен ниже.",
    "Linked to {partner}.": "Связь с {partner} установлена.",
    "Contract saved.": "Договор сохранён.",
    "Link suspended.": "Связь приостановлена.",
    "Link resumed.": "Связь возобновлена.",
    "Disclose subcontractors": "Раскрывать субподрядчиков",
    "Categories (comma-separated, empty = all)": "Категории (через запятую, пусто — все)",
    "Share requester contacts": "Передавать контакты заявителя",
    "Allow sub-delegation": "Разрешить передачу дальше",
    "Accept offers automatically": "Принимать заявки автоматически",
    "SLA policy (JSON)": "Политика SLA (JSON)",
    # users
    "Users": "Пользователи",
    "Role": "Роль",
    "deactivated": "отключён",
    "Deactivate": "Отключить",
    "Activate": "Включить",
    "Add a user": "Новый пользователь",
    "Add user": "Добавить",
    "A contact sees only the tickets of the organisation you enter here.": (
        "Клиент видит только заявки организации, указанной здесь."
    ),
    "User {name} added.": "Пользователь {name} добавлен.",
    "{name} can log in again.": "{name} снова может войти.",
    "{name} can no longer log in.": "{name} больше не может войти.",
    # reports
    "Partner scorecards": "Показатели партнёров",
    "SLA compliance": "Соблюдение SLA",
    "by level": "по уровням",
    "by partner": "по партнёрам",
    "From": "С",
    "To": "По",
    "Show": "Показать",
    "offered": "предложено",
    "accepted": "принято",
    "declined": "отклонено",
    "median response, min": "медиана реакции, мин",
    "median resolution, min": "медиана решения, мин",
    "breaches": "нарушения",
    "reopened": "переоткрыто",
    "CSAT": "Оценка",
    "clocks": "сроков",
    "met": "соблюдено",
    "breached": "нарушено",
    "compliance": "соблюдение",
    "No data for this period.": "За этот период данных нет.",
    "Download CSV": "Скачать CSV",
    "Where the time went": "Где ушло время",
    # keyed families
    "status:new": "новая",
    "status:open": "открыта",
    "status:in_progress": "в работе",
    "status:on_hold": "на паузе",
    "status:resolved": "выполнена",
    "status:closed": "закрыта",
    "status:reopened": "переоткрыта",
    "status:offered": "предложена",
    "status:declined": "отклонена",
    "status:cancelled": "отменена",
    # the hub on the partners page (account/web/partners.py)
    "Incoming invitations": "Входящие приглашения",
    "they would delegate tickets to you": "они будут передавать вам заявки",
    "yes": "да",
    "no": "нет",
    "Categories": "Категории",
    "response {minutes} min": "реакция {minutes} мин",
    "resolution {minutes} min": "решение {minutes} мин",
    "No SLA": "Без SLA",
    "This invitation cannot be accepted": "Это приглашение нельзя принять",
    "Received": "Получено",
    "expires": "действует до",
    "Find a company on the network": "Найти компанию в сети",
    "Reload the page to search the hub's directory.": (
        "Обновите страницу, чтобы искать в справочнике хаба."
    ),
    "This node has no hub configured (TIX_HUB_URL). Invitation tokens sent by hand still work.": (
        "У этого узла не настроен хаб (TIX_HUB_URL). Токены приглашений, переданные вручную, "
        "по-прежнему работают."
    ),
    "Company name or account id": "Название компании или идентификатор",
    "already your partner": "уже ваш партнёр",
    "Invite": "Пригласить",
    "Send invitation through the hub": "Отправить приглашение через хаб",
    "No company matches.": "Ничего не найдено.",
    "Invitations waiting": "Ожидающие приглашения",
    "The hub cannot be reached now; try again later.": ("Хаб сейчас недоступен; попробуйте позже."),
    "Invitation sent to {partner} through the hub.": "Приглашение отправлено {partner} через хаб.",
    "Invitation from {partner} declined.": "Приглашение от {partner} отклонено.",
    "Reason (the sender sees it)": "Причина (её увидит отправитель)",
    "Invitations sent through the hub": "Приглашения, отправленные через хаб",
    "The hub did not answer: states as last known.": (
        "Хаб не ответил: показаны последние известные состояния."
    ),
    "Sent": "Отправлено",
    "invitation:pending": "ждёт ответа",
    "invitation:accepted": "принято",
    "invitation:declined": "отклонено",
    "invitation:expired": "истекло",
    "invitation:taken": "снято без ответа",
    "invitation:withdrawn": "отозвано",
    "priority:critical": "критический",
    "priority:high": "высокий",
    "priority:normal": "обычный",
    "priority:low": "низкий",
    "sla:none": "без SLA",
    "sla:ok": "в срок",
    "sla:at_risk": "под угрозой",
    "sla:breached": "нарушен",
    "sla:met": "соблюдён",
    "state:offered": "предложена",
    "state:accepted": "принята",
    "state:declined": "отклонена",
    "state:in_progress": "в работе",
    "state:resolved": "выполнена",
    "state:confirmed": "подтверждена",
    "state:recalled": "отозвана",
    "vis:public": "всем (и клиенту)",
    "vis:partner": "партнёрам",
    "vis:internal": "только нам",
    "role:admin": "администратор",
    "role:dispatcher": "диспетчер",
    "role:engineer": "инженер",
    "role:contact": "клиент",
    "direction:downstream": "мы передаём им",
    "direction:upstream": "они передают нам",
    "disclose:named": "по имени",
    "disclose:anonymous": "анонимно",
    "disclose:hidden": "скрывать",
    "link:active": "активна",
    "link:suspended": "приостановлена",
    "event:created": "создана",
    "event:offered": "получена",
    "event:status": "статус",
    "event:comment": "комментарий",
    "event:delegated": "передана",
    "event:recalled": "отозвана",
    "event:confirmed": "подтверждена",
    "event:rework": "на доработку",
    "event:rated": "оценена",
    "event:attachment": "вложение",
    "event:updated": "изменена",
    "event:chain_status": "цепочка",
    "event:cascade_held": "задержано на приостановленной связи",
    "event:accepted": "принята",
    "event:declined": "отклонена",
    "event:sla_warning": "SLA под угрозой",
    "event:sla_breach": "SLA нарушен",
    "event:sla_squeeze": "срок партнёра позже нашего",
}

CATALOGUE: Final[dict[str, dict[str, str]]] = {"en": EN, "ru": RU}


FAMILIES: Final = (
    "status", "priority", "sla", "state", "vis", "role", "direction", "disclose", "link", "event",
    "invitation",
)  # fmt: skip


def _english(key: str) -> str:
    if key in EN:
        return EN[key]
    family, sep, rest = key.partition(":")
    if sep and family in FAMILIES:
        return rest.replace("_", " ")
    return key


def lookup(lang: str, key: str) -> str:
    """The text of ``key`` in ``lang``, falling back to English."""
    if lang != DEFAULT:
        text = CATALOGUE.get(lang, {}).get(key)
        if text is not None:
            return text
    return _english(key)


def translator(lang: str) -> Callable[..., str]:
    """``t(key, **values)`` for one language."""

    def t(key: str, **values: object) -> str:
        text = lookup(lang, key)
        if values:
            try:
                return text.format(**values)
            except (KeyError, IndexError, ValueError):
                return _english(key).format(**values)
        return text

    return t


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The language from the cookie if it names one we have, else ``Accept-Language``."""
    if cookie in LANGUAGES:
        return str(cookie)
    best, best_q = DEFAULT, 0.0
    for part in (accept_language or "")[:500].split(","):
        pieces = part.strip().split(";")
        code = pieces[0].strip().lower().split("-")[0]
        q = 1.0
        for param in pieces[1:]:
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if code in LANGUAGES and q > best_q:
            best, best_q = code, q
    return best
