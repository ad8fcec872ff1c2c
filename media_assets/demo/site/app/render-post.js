// Client-side rendering of a blog post: the served HTML has an empty root, the text arrives as JSON.
(function () {
  var script = document.currentScript;
  fetch(script.getAttribute("data-post"))
    .then(function (r) { return r.json(); })
    .then(function (post) {
      document.title = post.title + " | Northwind Blog";
      var root = document.getElementById("root");
      var header = document.createElement("header");
      header.innerHTML = '<nav><a href="/">Home</a> · <a href="/blog/">Blog</a> · <a href="/shop/">Shop</a></nav>';
      root.appendChild(header);
      var article = document.createElement("article");
      var h1 = document.createElement("h1");
      h1.textContent = post.title;
      article.appendChild(h1);
      var byline = document.createElement("p");
      byline.className = "byline";
      byline.textContent = "By " + post.author + ", " + post.date;
      article.appendChild(byline);
      post.sections.forEach(function (section) {
        if (section.heading) {
          var h2 = document.createElement("h2");
          h2.id = section.id;
          h2.textContent = section.heading;
          article.appendChild(h2);
        }
        section.paragraphs.forEach(function (text) {
          var p = document.createElement("p");
          p.textContent = text;
          article.appendChild(p);
        });
      });
      root.appendChild(article);
      var footer = document.createElement("footer");
      footer.innerHTML = "<p>Subscribe to our newsletter for more stories.</p><p>© 2026 Northwind</p>";
      root.appendChild(footer);
    });
})();
