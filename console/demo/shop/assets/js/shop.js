// The shop's one script: confirm the order before it is sent.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.querySelector("form.buy");
  if (!form) return;
  form.addEventListener("submit", function (event) {
    var qty = form.querySelector("input[name=qty]").value;
    if (!window.confirm("Buy " + qty + "?")) event.preventDefault();
  });
});
