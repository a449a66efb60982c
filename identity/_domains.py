"""Typo correction for the mail domains people actually use.

Checkout forms are full of `gmail.con`, `gmial.com` and `hotmial.co.uk`; such a domain has no
mailbox, so the address can only be a slip of the finger for the provider's. Corrected, it
matches the person's other records instead of starting a second profile. Only domains within
one edit (a transposition counts as one) of a well-known consumer provider are corrected,
never a domain that is itself a known provider (`mail.com`, `hotmail.com` and
`hotmail.co.uk` are three real, different services), and never a short one, where one edit
lands on a different real domain too easily. Company domains are left alone, but for a
top-level domain that does not exist and is one slip from ".com" (`acme.con`).
"""

from __future__ import annotations

from functools import lru_cache

from rapidfuzz.distance import OSA

PROVIDERS = frozenset(
    """
    gmail.com googlemail.com hotmail.com hotmail.co.uk hotmail.fr hotmail.de hotmail.it
    hotmail.es outlook.com outlook.fr outlook.de outlook.es live.com live.co.uk live.fr msn.com
    yahoo.com yahoo.co.uk yahoo.fr yahoo.de yahoo.es yahoo.it yahoo.ca yahoo.com.au ymail.com
    rocketmail.com icloud.com me.com mac.com aol.com aol.co.uk protonmail.com proton.me
    pm.me gmx.com gmx.net gmx.de web.de mail.com email.com zoho.com yandex.com yandex.ru
    comcast.net verizon.net att.net sbcglobal.net bellsouth.net cox.net charter.net
    btinternet.com sky.com virginmedia.com talktalk.net ntlworld.com blueyonder.co.uk
    orange.fr free.fr laposte.net sfr.fr wanadoo.fr libero.it virgilio.it t-online.de
    freenet.de bigpond.com optusnet.com.au shaw.ca rogers.com sympatico.ca qq.com 163.com
    naver.com hanmail.net rediffmail.com
    """.split()  # noqa: SIM905 - a word list reads better than 76 quoted strings
)
# Fuzzy targets: long enough that one edit away is no other real domain.
_TARGETS = tuple(sorted(d for d in PROVIDERS if len(d) >= 9))
# Top-level domains that do not exist, typed for ".com".
_BAD_COM = (".con", ".cmo", ".ocm", ".vom", ".xom", ".comm", ".cpm", ".coom")


@lru_cache(maxsize=4096)
def correct_domain(domain: str) -> str:
    """`domain` with an obvious typo of a well-known provider corrected; else unchanged."""
    if domain in PROVIDERS:
        return domain
    for bad in _BAD_COM:
        if domain.endswith(bad):
            fixed = domain[: -len(bad)] + ".com"
            if fixed in PROVIDERS:
                return fixed
            domain_com = fixed
            break
    else:
        domain_com = domain
    near = [t for t in _TARGETS if OSA.distance(domain_com, t, score_cutoff=1) <= 1]
    if len(near) == 1:
        return near[0]
    # ".con" and its kind are no top-level domain: the address was meant to end in ".com".
    return domain_com
