// django-celery-beat's periodic task form: the chosen schedule in words under the crontab field
// ("At 12:05 AM Asia/Shanghai": cron-descriptor writes English), as its own inline script does where no CSP refuses it.
(function () {
  var script = document.currentScript;
  var $ = django.jQuery;
  var readable = JSON.parse(document.getElementById("readable-crontabs").textContent);
  var help = script.dataset.crontabHelp;
  $(function () {
    $(".field-crontab_translation").hide();
    var show = function () {
      var words = readable[$("#id_crontab").val()];
      $(".field-crontab .help").text(help).append(words ? ["<br>", document.createTextNode(words)] : []);
    };
    $(".field-crontab").on("change", show);
    show();
  });
})();
