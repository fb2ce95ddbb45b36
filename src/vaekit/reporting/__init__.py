"""Figures, the HTML report and metric trackers. Matplotlib and Jinja2 load only when used."""
