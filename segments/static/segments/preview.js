// "Before you save" on the tier and circle forms: POST the form as it is to the
// preview URL and show how many members it would move or take.
(function () {
  "use strict";
  document.querySelectorAll("button[data-preview-url]").forEach(function (button) {
    var result = button.parentNode.querySelector(".crm-preview-result");
    button.addEventListener("click", function () {
      var form = button.closest("form");
      var data = new FormData(form);
      result.textContent = "…";
      fetch(button.dataset.previewUrl, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: {"X-CSRFToken": data.get("csrfmiddlewaretoken")}
      }).then(function (response) {
        return response.json();
      }).then(function (payload) {
        result.textContent = "";
        if (payload.errors) {
          var messages = [];
          Object.keys(payload.errors).forEach(function (field) {
            var label = form.querySelector("label[for='id_" + field + "']");
            messages.push((label ? label.textContent.replace(/:$/, "") + ": " : "") + payload.errors[field].join(" "));
          });
          result.className = "crm-preview-result errornote";
          result.textContent = messages.join(" · ");
          return;
        }
        result.className = "crm-preview-result";
        if (button.dataset.kind === "circle") {
          result.textContent = (payload.estimated ? "≈ " : "") + payload.members.toLocaleString() + " " + button.dataset.unit +
            " (" + payload.share + "%)" + (payload.note ? " · " + payload.note : "");
          result.setAttribute("data-members", payload.members);
          return;
        }
        var list = document.createElement("ul");
        payload.moves.forEach(function (move) {
          var item = document.createElement("li");
          item.textContent = move.from + " → " + move.to + ": " + move.members.toLocaleString();
          list.appendChild(item);
        });
        var total = document.createElement("strong");
        total.textContent = payload.moved.toLocaleString();
        total.setAttribute("data-moved", payload.moved);
        result.appendChild(total);
        result.appendChild(document.createTextNode(" " + button.dataset.unit));
        result.appendChild(list);
      }).catch(function () {
        result.className = "crm-preview-result errornote";
        result.textContent = "?";
      });
    });
  });
})();
