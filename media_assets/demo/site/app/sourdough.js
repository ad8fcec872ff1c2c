// A single-page app: the guide arrives from an API call after the document has loaded.
window.addEventListener("load", function () {
  fetch("/api/sourdough.json").then(function (r) { return r.json(); }).then(function (guide) {
    document.title = guide.title;
    var html = '<nav class="app-nav"><a href="#">Recipes</a> <a href="#">Tools</a> <a href="#">Sign in</a></nav>';
    html += "<main><h1>" + guide.title + "</h1>";
    guide.steps.forEach(function (step) {
      html += '<section><h2 id="' + step.id + '">' + step.heading + "</h2><p>" + step.text + "</p></section>";
    });
    html += "</main>";
    document.getElementById("app").innerHTML = html;
  });
});
