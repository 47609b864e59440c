"""Reply splitting (adapters.email.commands): commands, quoted history, signatures, forwards."""

# Russian command words and client lines are Cyrillic on purpose.
# ruff: noqa: RUF001

from __future__ import annotations

import pytest

from adapters.email.commands import Reply, split_reply

QUOTE = "> New job ACME-1042\n> Site: Nevsky 28\n"


@pytest.mark.parametrize(
    ("first_line", "command", "argument", "comment_head"),
    [
        ("ACCEPT", "accept", "", ""),
        ("accept.", "accept", "", ""),
        ("Accept!", "accept", "", ""),
        ("Accept, see you at 10", "accept", "", "see you at 10"),
        ("*ACCEPT*", "accept", "", ""),
        ("DECLINE no capacity this week", "decline", "no capacity this week", ""),
        ("Decline: no capacity", "decline", "no capacity", ""),
        ("decline - wrong region", "decline", "wrong region", ""),
        ("DECLINE", "decline", "", ""),
        ("START", "start", "", ""),
        ("START tomorrow 9:00", "start", "", "tomorrow 9:00"),
        ("Start.", "start", "", ""),
        ("HOLD waiting for parts", "hold", "waiting for parts", ""),
        ("hold: client asked to wait", "hold", "client asked to wait", ""),
        ("HOLD ON the client's request", "hold", "ON the client's request", ""),
        ("RESOLVED replaced the pump", "resolve", "replaced the pump", ""),
        ("Resolved: replaced the pump", "resolve", "replaced the pump", ""),
        ("resolved — valve replaced", "resolve", "valve replaced", ""),
        ("ПРИНЯТО", "accept", "", ""),
        ("Принято!", "accept", "", ""),
        ("Принято, будем в 10", "accept", "", "будем в 10"),
        ("ОТКАЗ нет запчастей", "decline", "нет запчастей", ""),
        ("отказ: не наш профиль", "decline", "не наш профиль", ""),
        ("В РАБОТЕ", "start", "", ""),
        ("в  работе.", "start", "", ""),
        ("ПАУЗА ждём запчасти", "hold", "ждём запчасти", ""),
        ("Пауза - клиент просит перенести", "hold", "клиент просит перенести", ""),
        ("ВЫПОЛНЕНО заменили насос", "resolve", "заменили насос", ""),
        ("выполнено", "resolve", "", ""),
    ],
)
def test_first_line_command(
    first_line: str, command: str, argument: str, comment_head: str
) -> None:
    reply = split_reply(f"{first_line}\n\nMore text.\n")
    assert reply.command == command
    assert reply.argument == argument
    expected_comment = f"{comment_head}\n\nMore text." if comment_head else "More text."
    assert reply.comment == expected_comment


@pytest.mark.parametrize(
    "first_line",
    [
        "Accepted",
        "Acceptance test passed",
        "Started work at 9",
        "Start time is 10",
        "Hold on, let me check with the engineer",
        "hold off until Monday please",
        "Holding the part for you",
        "Resolvedness",
        "Declined by the client? Please check.",
        "принято в работу",
        "Отказываюсь",
        "в работе с 9 утра",
        "Hi, ACCEPT",
        "Please ACCEPT",
    ],
)
def test_line_that_is_not_a_command_is_a_comment(first_line: str) -> None:
    reply = split_reply(f"{first_line}\nsecond line")
    assert reply.command is None
    assert reply.argument == ""
    assert reply.comment == f"{first_line}\nsecond line"


def test_command_must_be_the_first_non_empty_line() -> None:
    assert split_reply("\n\n  \nACCEPT\n").command == "accept"
    assert split_reply("Hello,\nACCEPT\n").command is None


@pytest.mark.parametrize(
    "history",
    [
        f"On Mon, Mar 4, 2024 at 6:14 PM ACME via Tix <tix+abc@mail.tix.example> wrote:\n\n{QUOTE}",
        "On Mon, Mar 4, 2024 at 6:14 PM ACME Service via Tix <\n"
        f"tix+abc@mail.tix.example> wrote:\n\n{QUOTE}",
        f"On 5 Mar 2024, at 10:15, ACME via Tix <tix+abc@mail.tix.example> wrote:\n\n{QUOTE}",
        f"On 05.03.2024 10:15, ACME via Tix wrote:\n{QUOTE}",
        f"On Tuesday ACME wrote:\n{QUOTE}",
        f"05.03.2024 10:15, ACME via Tix пишет:\n{QUOTE}",
        f"5 марта 2024 г., в 10:15, ACME <tix+abc@mail.tix.example> написал(а):\n\n{QUOTE}",
        f"вт, 5 мар. 2024 г. в 10:15, ACME via Tix <tix+abc@mail.tix.example>:\n\n{QUOTE}",
        f'05.03.2024, 10:15, "ACME via Tix" <tix+abc@mail.tix.example>:\n{QUOTE}',
        f">Вторник, 5 марта 2024, 10:15 +03:00 от ACME <tix+abc@mail.tix.example>:\n>\n{QUOTE}",
        f"Вторник, 5 марта 2024, 10:15 +03:00 от ACME Service:\n{QUOTE}",
        "-----Original Message-----\nFrom: ACME\nSent: Tuesday\nSubject: job\n\nNew job ACME-1042",
        "-----Исходное сообщение-----\nОт: ACME\nТема: заявка\n\nНовая заявка",
        "From: ACME <tix+abc@mail.tix.example>\nSent: Tuesday, March 5, 2024 10:15 AM\n"
        "To: Ivan\nSubject: [ACME-1042] New job\n\nNew job ACME-1042 unquoted",
        "________________________________\nFrom: ACME\nSent: Tuesday\nTo: Ivan\nSubject: job\n\nx",
        "*From:* ACME <tix+abc@mail.tix.example>\n*Sent:* Tuesday\n*Subject:* job\n\nNew job",
        "От: ACME <tix+abc@mail.tix.example>\nОтправлено: 5 марта 2024 г. 10:15\nКому: Иван\n"
        "Тема: [ACME-1042] Новая заявка\n\nНовая заявка",
        "On Mon, Mar 4, 2024 at 6:14 PM ACME <tix@x.example> wrote:\nNew job, not quoted at all",
    ],
)
def test_top_posted_reply_drops_the_history(history: str) -> None:
    reply = split_reply(f"HOLD waiting for parts\n\nCall me.\n\n{history}\n")
    assert reply == Reply(command="hold", argument="waiting for parts", comment="Call me.")


def test_bottom_posted_reply_keeps_the_text_below_the_quote() -> None:
    text = (
        "On Tue, Mar 5, 2024 at 10:15 AM ACME <tix+abc@mail.tix.example> wrote:\n\n"
        f"{QUOTE}\nDECLINE we do not service Carrier units\n\nSergey\n"
    )
    assert split_reply(text) == Reply("decline", "we do not service Carrier units", "Sergey")


def test_inline_replies_keep_every_own_line() -> None:
    text = f"{QUOTE}\nYes, we know the site.\n> Priority: high\nUnderstood.\n"
    reply = split_reply(text)
    assert reply.command is None
    assert reply.comment == "Yes, we know the site.\nUnderstood."


def test_a_line_above_a_whole_attribution_is_not_swallowed_by_it() -> None:
    text = f"2 valves replaced\nOn Mon, Mar 4, 2024 at 6:14 PM ACME <tix@x.example> wrote:\n{QUOTE}"
    assert split_reply(text).comment == "2 valves replaced"


@pytest.mark.parametrize(
    "signature",
    [
        "-- \nIvan Petrov\nCoolFix",
        "--\nIvan",
        "Sent from my iPhone",
        "Sent from my Galaxy",
        "Get Outlook for Android",
        "Отправлено с iPhone",
        "Отправлено из мобильной Почты Mail.ru",
        "Отправлено из мобильной Яндекс.Почты",
        "Best regards,\nIvan Petrov\nService manager\n+7 812 555 10 20",
        "С уважением,\nИван Петров\nООО «КулФикс»",
    ],
)
def test_signature_is_dropped(signature: str) -> None:
    reply = split_reply(f"RESOLVED pump replaced\n\nPhotos attached.\n\n{signature}\n\n{QUOTE}")
    assert reply == Reply("resolve", "pump replaced", "Photos attached.")


def test_closing_with_a_long_tail_is_kept_because_it_may_be_content() -> None:
    tail = "\n".join(f"line {i} of a long report that follows the greeting" for i in range(10))
    reply = split_reply(f"Regards,\n{tail}")
    assert reply.comment.startswith("Regards,\nline 0")


@pytest.mark.parametrize(
    ("text", "subject"),
    [
        ("FYI\n\n---------- Forwarded message ---------\nFrom: Pavel\n\nRESOLVED done", ""),
        ("-------- Forwarded Message --------\nSubject: x\n\nACCEPT", ""),
        ("Begin forwarded message:\n\nFrom: Pavel\nRESOLVED done", ""),
        ("-------- Пересылаемое сообщение --------\n05.03.2024, Павел:\nВЫПОЛНЕНО", ""),
        ("Начало переадресованного сообщения:\n\nОт: Павел\nВЫПОЛНЕНО", ""),
        ("RESOLVED see below\n\nFrom: Pavel\nSent: Tuesday\nSubject: done\n\ndetails", "FW: done"),
        ("ACCEPT", "Fwd: ACME-1042"),
        ("ПРИНЯТО", "Пересл: заявка"),
    ],
)
def test_forwarded_mail_is_never_a_command(text: str, subject: str) -> None:
    reply = split_reply(text, subject=subject)
    assert reply.forwarded
    assert reply.command is None
    assert reply.comment == text.strip()


def test_reply_with_only_quoted_text_is_empty() -> None:
    reply = split_reply(f"\nOn Mon, Mar 4, 2024 at 6:14 PM ACME <t@x.example> wrote:\n\n{QUOTE}\n")
    assert reply == Reply(command=None, argument="", comment="")
    assert reply.is_empty
    assert split_reply("").is_empty


def test_windows_line_endings_zero_width_and_no_break_spaces_are_normalised() -> None:
    reply = split_reply("\ufeff\u200bACCEPT\r\n\r\nOn\xa0site at 10.\r\n")
    assert reply == Reply("accept", "", "On site at 10.")


def test_outlook_inline_image_placeholder_is_not_comment_text() -> None:
    reply = split_reply("START\n\nIvan\n[cid:image001.png@01DA6EDE.6A3B2F10]\n")
    assert reply.comment == "Ivan"


def test_long_comment_is_kept_whole() -> None:
    body = "\n".join(f"Step {i}: done." for i in range(200))
    reply = split_reply(f"RESOLVED all steps\n{body}")
    assert reply.comment == body


def test_forward_marker_inside_quoted_history_does_not_make_a_reply_a_forward() -> None:
    text = (
        "ACCEPT\n\nFrom: ACME <tix+abc@mail.tix.example>\nSent: Tuesday\nTo: Ivan\n"
        "Subject: job\n\n---------- Forwarded message ---------\nold forwarded job\n"
    )
    reply = split_reply(text)
    assert (reply.command, reply.forwarded) == ("accept", False)
    quoted = f"START\n\n> ---------- Forwarded message ---------\n{QUOTE}"
    assert split_reply(quoted).command == "start"
