"""`errauto web`: the review queue in a browser, served locally.

`app.create_app` builds the Flask application (views, templates, static
files, the token and CSRF checks, the security headers); `diff` turns a
stored patch into files, hunks and numbered lines, `highlight` colours
them and `diffview` folds and bounds them for the submission page;
`scorechart` lays out the score's picture; `commits` reads a merged commit
for its own page.
The pages read the store through `ReadOnlyStore` (its own read-only
connections); a decision made on a page goes through the same functions as
`errauto queue approve / reject / retry`.
"""
