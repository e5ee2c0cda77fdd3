"""Control images and masks for the refinement steps: part masks and repaint rings, hand depth
maps, OpenPose images, reference crops."""
