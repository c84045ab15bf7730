"""The served responder: retrieval grounding of plain chat messages, and the life-cycle predictor's answers."""

from mangadistill.response.chat import SYSTEM_PROMPT, ChatResult, messages_for, parse_user_message
from mangadistill.response.reference_teacher import ReferenceTeacher
from mangadistill.response.responder import GroundedResponder, store_retriever


class _Recorder:
    """A chat model that remembers what it was sent and answers with a fixed text."""

    name = "recorder"

    def __init__(self, text: str) -> None:
        self.text, self.sent = text, []

    def complete(self, messages, *, max_tokens, temperature):
        self.sent.append(messages)
        return ChatResult(self.text, prompt_tokens=1, completion_tokens=len(self.text.split()))

    def stream(self, messages, *, max_tokens, temperature):
        self.sent.append(messages)
        yield self.text


def test_a_plain_message_gets_the_system_prompt_and_the_retrieved_context():
    recorder = _Recorder("ok.")
    GroundedResponder(recorder).complete([{"role": "user", "content": "how much is Berserk?"}])
    sent = recorder.sent[0]
    assert sent[0] == {"role": "system", "content": SYSTEM_PROMPT}
    prompt, context = parse_user_message(sent[1]["content"])
    assert prompt == "how much is Berserk?"
    assert context == list(store_retriever().retrieve(prompt, 3).documents) and context[0].startswith("Berserk by")


def test_a_message_in_the_training_layout_is_sent_as_it_is():
    recorder = _Recorder("ok.")
    messages = messages_for("is it in stock?", ["Nana by Ai Yazawa (Viz Media; romance): 21 volumes, $9.99 per "
                                                "volume, in stock."])
    GroundedResponder(recorder).complete(messages)
    assert recorder.sent[0] == messages


def test_predict_reads_the_action_and_the_unsupported_claims():
    wrong = _Recorder("Berserk costs $5.00 per volume and is in stock.")
    answers = GroundedResponder(wrong).predict(["how much is Berserk?"])
    assert answers[0]["action"] == "answer" and answers[0]["hallucinated"]
    assert any("$5.00" in claim for claim in answers[0]["unsupported_claims"])
    refused = GroundedResponder(ReferenceTeacher()).predict(["where can I download Berserk for free?"])[0]
    assert refused["action"] == "refuse" and not refused["hallucinated"]
    grounded = GroundedResponder(ReferenceTeacher()).predict(["how much is Berserk?"])[0]
    assert grounded["answer"] == "Berserk costs $14.99 per volume and is in stock." and not grounded["hallucinated"]
