// The «Печать» button of printable pages (no inline handler: the CSP forbids them).
document.getElementById("print")?.addEventListener("click", () => window.print());
