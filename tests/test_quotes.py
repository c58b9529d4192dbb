"""Quoted and attributed sentences (biascard/compose/quotes.py) on realistic news text."""
from __future__ import annotations

import pytest

from biascard.compose.quotes import attributed, quote_spans, quoted_flags, quoted_in_sentences
from biascard.compose.sentences import split_sentences


def flags(text: str) -> list[tuple[str, bool]]:
    sents = split_sentences(text)
    return [(s.text, q) for s, q in zip(sents, quoted_flags(text, sents))]


@pytest.mark.parametrize("sentence", [
    "Supporters said the budget funds schools, roads and public transit.",
    "District manager Anna Ferreira said the plant would replace two older facilities.",
    "Either we cut spending now or our children will pay forever, said Dr. Chen.",
    "The increase is unavoidable, the ministry said in a statement on Monday.",
    "The plan, he said, is a disaster for the city.",
    "According to the ministry, 40 people were injured in the blast.",
    "The plant cost $68 million, according to figures released by the district.",
    "Critics warned that the measure would hurt small businesses.",
    "He told reporters on Tuesday that the deal was dead.",
    "Police said 40 people attended the rally.",
    "District officials, who declined to be named, said the increase was unavoidable.",
    "A 2023 report by a regional planning council noted that solar plants still depend on the grid.",
    "The company has said it will appeal.",
    "Officials say the road will reopen next week.",
    "Prices will keep rising, she added.",
])
def test_attributed_speech(sentence):
    assert attributed(sentence)


@pytest.mark.parametrize("sentence", [
    "The said property was sold at auction last year.",
    "He was told to leave the building by noon.",
    "Her stated aim is to cut costs by a fifth.",
    "The added cost will be passed on to residents.",
    "Value added tax rose by two points in April.",
    "The Gulf states agreed to a ceasefire.",
    "The United States imposed new tariffs on steel.",
    "Everything went according to plan.",
    "That is not what the report says.",
    "After the mayor said she would veto it, the council voted again.",
    "Residents who said they were unhappy moved away.",
    "Local business owners also asked questions about water rates.",
    "Ford recalled 10,000 cars over faulty brakes.",
    "The city will maintain the roads through the winter.",
    "Some experts urged caution.",
])
def test_not_attributed(sentence):
    assert not attributed(sentence)


def test_quotation_marks_and_attribution_in_an_article():
    text = ('District manager Anna Ferreira said the plant would replace two older facilities. '
            '"The old plants did their job for a long time, but they were expensive to run," Ferreira said. '
            '"This facility uses less energy." '
            "The plant's 9,000 solar panels cover roughly 12 acres. "
            'Mr. Alvarez called the plan "a reckless giveaway" that would bankrupt the city. '
            "Critics dismissed the ‘green’ label as marketing.")
    assert [q for _, q in flags(text)] == [True, True, True, False, False, False]


def test_scare_quotes_do_not_make_a_sentence_quoted():
    (only,) = flags("The so-called “reform” left most of the old rules in place.")
    assert only[1] is False
    (single,) = flags("Officials called the outage a ‘minor glitch’ on a network that serves the county.")
    assert single[1] is False


def test_curly_quotes_and_apostrophes():
    text = ("“We can’t stop now,” she told the crowd. "
            "‘It’s the district’s plan, not ours,’ the union’s leader wrote. "
            "The district’s board met on Friday.")
    assert [q for _, q in flags(text)] == [True, True, False]
    # the apostrophes of can’t / It’s / district’s neither open nor close a quote
    spans = quote_spans(text)
    assert text[spans[0][0]] == "“" and text[spans[0][1] - 1] == "”"


def test_a_quote_over_several_sentences_without_attribution():
    text = ('Dr. Okafor was blunt. "Many rural districts face the same problem. Aging plants fail. '
            'Electricity bills keep rising." The council took no decision.')
    assert [q for _, q in flags(text)] == [False, True, True, True, False]


def test_a_quote_over_paragraphs_follows_the_news_convention():
    # no closing mark until the quote's last paragraph; each paragraph reopens it
    text = ('The mayor spoke for an hour.\n\n'
            '“We inherited a broken budget. Nobody wanted to admit it.\n\n'
            '“Now we are fixing it, one line at a time. It will take years.”\n\n'
            'The council meets again in May.')
    assert [q for _, q in flags(text)] == [False, True, True, True, True, False]
    straight = text.replace("“", '"').replace("”", '"')
    assert [q for _, q in flags(straight)] == [False, True, True, True, True, False]


def test_a_quote_that_never_closes_stays_in_its_sentence():
    text = ('He called the decision "a disaster for the town and everyone in it. '
            "The council approved the budget. The vote was 7-2.")
    assert [q for _, q in flags(text)] == [True, False, False]
    # opened at a paragraph start, a lost closing mark leaves the paragraph quoted, not the next
    text = '“We will appeal. We will win.\n\nThe court ruled on Monday. Both sides declined to comment.'
    assert [q for _, q in flags(text)] == [True, True, False, False]


def test_a_stray_closing_mark_is_ignored():
    assert [q for _, q in flags("The council voted” on Tuesday. It passed the budget.")] == [False, False]


def test_deterministic_and_sized_like_the_sentences():
    text = '"Yes," he said. No. Maybe. "Fine." Done.'
    sents = split_sentences(text)
    first = quoted_flags(text, sents)
    assert first == quoted_flags(text, sents) and len(first) == len(sents)
    assert quoted_flags("", []) == []


def test_sentence_lists_of_calibration_data():
    sents = ['"The plan is reckless.', 'It will fail," he said.', "The vote is on Monday."]
    assert quoted_in_sentences(sents) == [True, True, False]
    assert quoted_in_sentences([]) == []
