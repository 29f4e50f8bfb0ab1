"""The twinlab web app, installed at /opt/twinlab/app in both images."""
