"""Picked elements reach the agent as a few lines of text: the chain with its sources, the nearest props, the
HTML; whatever else the context holds stays a JSON block."""

from sessions import picks

PICK = {
    "url": "http://localhost:5173/cart", "viewport": {"width": 1280, "height": 800},
    "selector": "main > div.cart > button.pay", "html": '<button class="pay">Pay 42 €</button>',
    "components": [
        {"name": "App", "source": {"file": "src/App.tsx", "line": 3}},
        {"name": "Cart", "props": {"items": 2}, "source": {"file": "src/Cart.tsx", "line": 18}},
        {"name": "PayButton", "props": {"amount": 42, "onPay": "ƒ handlePay", "label": "x" * 1000},
         "state": [True], "source": {"file": "src/PayButton.tsx", "line": 7}},
    ],
}


def test_a_pick_is_a_few_lines_the_agent_reads():
    text = picks.text_for_agent("Make the button green", {"picks": [PICK]})
    lines = text.split("\n")
    assert lines[0] == "Make the button green"
    assert "1. main > div.cart > button.pay on http://localhost:5173/cart, viewport 1280x800" in lines
    assert ("   Components (root > picked): App (src/App.tsx:3) > Cart (src/Cart.tsx:18) > "
            "PayButton (src/PayButton.tsx:7)") in lines
    props = next(line for line in lines if line.startswith("   Props of PayButton: "))
    assert '"onPay":"ƒ handlePay"' in props and props.endswith("…") and len(props) < 460  # long values cut
    assert "   State of PayButton: [true]" in lines
    assert '   HTML: <button class="pay">Pay 42 €</button>' in lines
    assert "Context (JSON)" not in text
    assert len(text) < len(str(PICK))  # fewer characters than the JSON it came from


def test_other_context_stays_json_and_odd_picks_are_skipped():
    text = picks.text_for_agent("fix it", {"picks": ["not a pick", {"selector": "#x"}], "ticket": "PAY-12"})
    assert "1. #x on the page" in text
    assert 'Context (JSON):\n```json\n{\n  "ticket": "PAY-12"\n}\n```' in text
