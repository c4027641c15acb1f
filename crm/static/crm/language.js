// The language selector in the top bar switches at once (no inline handler: CSP).
document.addEventListener("change", function (event) {
  if (event.target.matches("select[data-submit-on-change]")) event.target.form.submit();
});
