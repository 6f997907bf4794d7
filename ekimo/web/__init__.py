"""The web console (/ui): server-rendered pages for the people who run the catalog. They call the
same services as the API, through the container, and sign their users in with a cookie."""
