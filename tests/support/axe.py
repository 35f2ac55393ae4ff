"""Accessibility checks in Chromium: axe-core (the npm package in node_modules/) injected into a
Playwright page, and its serious and critical violations as readable lines."""

from pathlib import Path

AXE_JS = Path(__file__).resolve().parent.parent.parent / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING_IMPACTS = ("serious", "critical")
# Only the violations, and the rules of WCAG 2.x A/AA and axe's best practices (which include the
# landmark rules: content outside <main>, no main landmark).
RUN_AXE = """async () => {
  // Colours as they end up: contrast read while a dialog still fades in is the fade's, not the
  // page's. (Endless animations, a pulsing recording dot say, are taken as they are.)
  await Promise.all(document.getAnimations()
    .filter((a) => a.effect && a.effect.getComputedTiming().endTime < Infinity)
    .map((a) => a.finished.catch(() => null)));
  const results = await axe.run(document, { resultTypes: ["violations"] });
  return results.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => ({ target: n.target.join(" "), summary: n.failureSummary || "" })),
  }));
}"""


def blocking_violations(page) -> list[str]:
    """One line per element that breaks a serious or critical rule: rule id, impact, element
    (CSS selector), what the rule asks and what axe found wrong with the element."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        if not AXE_JS.exists():
            raise FileNotFoundError(f"{AXE_JS} is missing: run scripts/install")
        page.add_script_tag(path=str(AXE_JS))
    lines = []
    for violation in page.evaluate(RUN_AXE):
        if violation["impact"] not in BLOCKING_IMPACTS:
            continue
        for node in violation["nodes"]:
            summary = " ".join(node["summary"].split())
            lines.append(f"{violation['id']} ({violation['impact']}) at {node['target']}: "
                         f"{violation['help']}. {summary}")
    return lines


def assert_accessible(page, what: str) -> None:
    found = blocking_violations(page)
    assert not found, (f"{what}: {len(found)} serious or critical accessibility violation(s):\n  "
                       + "\n  ".join(found))
